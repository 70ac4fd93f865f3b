"""Error numbers and the error type of the ArangoDB test server.

The numbers are ArangoDB's (``lib/Basics/errors.dat``); the HTTP status each one is
answered with follows what ArangoDB does for the same situation.
"""

from __future__ import annotations

# General
ERROR_INTERNAL = 4
ERROR_BAD_PARAMETER = 10
ERROR_FORBIDDEN = 11
ERROR_NOT_IMPLEMENTED = 9
ERROR_HTTP_BAD_PARAMETER = 400
ERROR_HTTP_NOT_FOUND = 404
ERROR_HTTP_METHOD_NOT_ALLOWED = 405
ERROR_HTTP_CORRUPTED_JSON = 600
# ArangoDB storage errors
ERROR_ARANGO_CONFLICT = 1200
ERROR_ARANGO_DOCUMENT_NOT_FOUND = 1202
ERROR_ARANGO_DATA_SOURCE_NOT_FOUND = 1203
ERROR_ARANGO_COLLECTION_PARAMETER_MISSING = 1204
ERROR_ARANGO_DOCUMENT_HANDLE_BAD = 1205
ERROR_ARANGO_DUPLICATE_NAME = 1207
ERROR_ARANGO_ILLEGAL_NAME = 1208
ERROR_ARANGO_UNIQUE_CONSTRAINT_VIOLATED = 1210
ERROR_ARANGO_INDEX_NOT_FOUND = 1212
ERROR_ARANGO_DOCUMENT_KEY_BAD = 1221
ERROR_ARANGO_DOCUMENT_KEY_UNEXPECTED = 1222
ERROR_ARANGO_DOCUMENT_TYPE_INVALID = 1227
ERROR_ARANGO_DATABASE_NOT_FOUND = 1228
ERROR_ARANGO_DATABASE_NAME_INVALID = 1229
ERROR_ARANGO_USE_SYSTEM_DATABASE = 1230
ERROR_ARANGO_INVALID_EDGE_ATTRIBUTE = 1233
# AQL
ERROR_QUERY_PARSE = 1501
ERROR_QUERY_VARIABLE_NAME_UNKNOWN = 1512
ERROR_QUERY_COLLECTION_LOCK_FAILED = 1521
ERROR_QUERY_FUNCTION_NAME_UNKNOWN = 1540
ERROR_QUERY_BIND_PARAMETER_MISSING = 1551
ERROR_QUERY_BIND_PARAMETER_UNDECLARED = 1552
ERROR_QUERY_BIND_PARAMETER_TYPE = 1553
ERROR_QUERY_EMPTY = 1502
ERROR_QUERY_ARRAY_EXPECTED = 1563
# Cursors
ERROR_CURSOR_NOT_FOUND = 1600

# HTTP status ArangoDB uses for an error number when it is raised per document / per query.
_HTTP_FOR_ERROR = {
    ERROR_INTERNAL: 500,
    ERROR_BAD_PARAMETER: 400,
    ERROR_FORBIDDEN: 403,
    ERROR_NOT_IMPLEMENTED: 501,
    ERROR_HTTP_BAD_PARAMETER: 400,
    ERROR_HTTP_NOT_FOUND: 404,
    ERROR_HTTP_METHOD_NOT_ALLOWED: 405,
    ERROR_HTTP_CORRUPTED_JSON: 400,
    ERROR_ARANGO_CONFLICT: 409,
    ERROR_ARANGO_DOCUMENT_NOT_FOUND: 404,
    ERROR_ARANGO_DATA_SOURCE_NOT_FOUND: 404,
    ERROR_ARANGO_COLLECTION_PARAMETER_MISSING: 400,
    ERROR_ARANGO_DOCUMENT_HANDLE_BAD: 400,
    ERROR_ARANGO_DUPLICATE_NAME: 409,
    ERROR_ARANGO_ILLEGAL_NAME: 400,
    ERROR_ARANGO_UNIQUE_CONSTRAINT_VIOLATED: 409,
    ERROR_ARANGO_INDEX_NOT_FOUND: 404,
    ERROR_ARANGO_DOCUMENT_KEY_BAD: 400,
    ERROR_ARANGO_DOCUMENT_KEY_UNEXPECTED: 400,
    ERROR_ARANGO_DOCUMENT_TYPE_INVALID: 400,
    ERROR_ARANGO_DATABASE_NOT_FOUND: 404,
    ERROR_ARANGO_DATABASE_NAME_INVALID: 400,
    ERROR_ARANGO_USE_SYSTEM_DATABASE: 403,
    ERROR_ARANGO_INVALID_EDGE_ATTRIBUTE: 400,
    ERROR_QUERY_PARSE: 400,
    ERROR_QUERY_EMPTY: 400,
    ERROR_QUERY_VARIABLE_NAME_UNKNOWN: 400,
    ERROR_QUERY_FUNCTION_NAME_UNKNOWN: 404,
    ERROR_QUERY_BIND_PARAMETER_MISSING: 400,
    ERROR_QUERY_BIND_PARAMETER_UNDECLARED: 400,
    ERROR_QUERY_BIND_PARAMETER_TYPE: 400,
    ERROR_QUERY_ARRAY_EXPECTED: 400,
    ERROR_CURSOR_NOT_FOUND: 404,
}


def http_status_for(error_num: int) -> int:
    return _HTTP_FOR_ERROR.get(error_num, 500)


class ArangoError(Exception):
    """An error answered as ``{"error": true, "errorNum": ..., "errorMessage": ..., "code": ...}``."""

    def __init__(self, error_num: int, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.error_num = error_num
        self.message = message
        self.http_status = http_status if http_status is not None else http_status_for(error_num)

    def body(self) -> dict[str, object]:
        return {
            "error": True,
            "errorNum": self.error_num,
            "errorMessage": self.message,
            "code": self.http_status,
        }

    def item(self) -> dict[str, object]:
        """The inline form used for one failed document inside a batch response."""
        return {"error": True, "errorNum": self.error_num, "errorMessage": self.message}


def unique_violation(index_name: str, index_type: str, fields: list[str], key: str) -> ArangoError:
    over = ", ".join(f"'{f}'" for f in fields)
    return ArangoError(
        ERROR_ARANGO_UNIQUE_CONSTRAINT_VIOLATED,
        f"unique constraint violated - in index {index_name} of type {index_type} over {over}; conflicting key: {key}",
    )


def collection_not_found(name: str) -> ArangoError:
    return ArangoError(ERROR_ARANGO_DATA_SOURCE_NOT_FOUND, f"collection or view not found: {name}")


def database_not_found(name: str) -> ArangoError:
    return ArangoError(ERROR_ARANGO_DATABASE_NOT_FOUND, f"database not found: {name}")
