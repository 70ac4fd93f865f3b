"""A small, precise secret scanner for the files this repository would commit.

It looks for *values*, not for the words: a template that lists keys with empty values, a
`${VAR:?}` interpolation, a `<set-me>` placeholder, a `{{ template }}`, a `$(generated)` value
or code that computes a password at run time are all fine. What it reports:

* private keys (PEM `-----BEGIN ... PRIVATE KEY-----` blocks);
* `password` / `secret key` / `token` style assignments (`key: value`, `key=value`,
  `"key": "value"`) whose value is a literal; in Python, only quoted string literals; in prose
  (Markdown, comment lines) an assignment followed by more words is a sentence;
* credentials inside URLs (`scheme://user:PASS@host`) unless the password is a placeholder;
  these two rules skip the test tree (`tests/`, `test_*`): its local test servers use
  throw-away credentials. Every other rule applies there too;
* AWS access key ids and secret keys, GitHub/Slack tokens, Slack webhook URLs;
* Fernet-key-shaped strings (43 url-safe base64 characters + `=`, i.e. 32 random bytes);
* Kubernetes `Secret` manifests carrying `data:` (base64) values or non-placeholder
  `stringData:` values (user-name keys excepted).

Files are those git would commit: `git ls-files` plus untracked files not ignored
(`git ls-files --others --exclude-standard`).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

MAX_BYTES = 2_000_000


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.rule}] {self.excerpt}"


# --- what counts as "not a real value" --------------------------------------------------------

_PLACEHOLDER_RES = [
    re.compile(r"^\$\{[^}]*\}$"),  # ${VAR}, ${VAR:?msg}, ${VAR:-}
    re.compile(r"^\$\{?[A-Za-z_][A-Za-z0-9_]*\}?$"),  # $VAR
    re.compile(r"^\$\$?[{(A-Za-z_]"),  # $(generated ...), $$VAR (compose escape), ${...}...
    re.compile(r"^<[^<>]*>$"),  # <set-me>, <password>
    re.compile(r"^\{\{.*\}\}$"),  # {{ template }}
    re.compile(r"^%\([A-Za-z_]+\)s$"),  # %(name)s
    re.compile(r"^\*+$"),  # *****
    re.compile(r"^(?:\.{3,}|\u2026)$"),  # ... (an elided value in docs)
    re.compile(r"^[A-Z][A-Z0-9_]*$"),  # PASSWORD, SET_ME: an upper-case name stands for a value
]
_PLACEHOLDER_WORDS = {"", "null", "none", "~", "true", "false", "''", '""', "redacted", "set-me"}
# The name of a key in a Secret (`KAFKA_PASSWORD: kafka-password`), not a value.
_SECRET_KEY_NAME = re.compile(r"^[a-z0-9]+(?:[-_.][a-z0-9]+)*$")
_SECRET_KEY_WORDS = {"password", "passwd", "secret", "key", "token", "credentials"}


def is_placeholder(value: str) -> bool:
    v = value.strip().strip("'\"").strip()
    if v.lower() in _PLACEHOLDER_WORDS:
        return True
    if _SECRET_KEY_NAME.match(v) and _SECRET_KEY_WORDS.intersection(re.split(r"[-_.]", v)):
        return True
    return any(r.match(v) for r in _PLACEHOLDER_RES)


# --- rules --------------------------------------------------------------------------------------

_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_AWS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}(?![A-Z0-9])")
_AWS_SECRET = re.compile(
    r"(?i)aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
)
_TOKENS = [
    ("github-token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("slack-token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    (
        "slack-webhook",
        re.compile(r"https://hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+"),
    ),
]
_FERNET = re.compile(r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{43}=)(?![A-Za-z0-9_=-])")
# key ending in password/passwd/secret key/token/...; then `:` or `=`; then the value.
_ASSIGNMENT = re.compile(
    r"""(?ix)
    (?<![A-Za-z0-9_.$-])(?<!\$\{)   # a whole key, not the VAR of a ${VAR:?...} interpolation
    (?P<key>[A-Za-z0-9_.-]*?
        (?:password|passwd|pwd|secret[_.-]?key|api[_.-]?key|jwt[_.-]?secret|fernet[_.-]?key
           |client[_.-]?secret|access[_.-]?token|auth[_.-]?token|private[_.-]?key))
    (?P<q>["']?)\s*(?:=|:(?!//))\s*
    (?P<value>"[^"\n]*"|'[^'\n]*'|[^\s,;#}\]`]*)
    """
)
# A camelCase key that names where a secret is, not the secret (chart value `secretKey:`).
_REFERENCE_KEYS = {"secretkey"}
_URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]*:(?P<pw>[^@\s/'\"]+)@")

_CODE_SUFFIXES = {".py"}
_YAML_SUFFIXES = {".yaml", ".yml"}


def _is_test_code(path: str) -> bool:
    parts = Path(path).parts
    return "tests" in parts or Path(path).name.startswith("test_")


_PROSE_SUFFIXES = {".md", ".rst", ".txt"}
_COMMENT_STARTS = ("#", "//", "*", "--", ";")


def _scan_assignments(path: str, lineno: int, line: str) -> list[Finding]:
    findings: list[Finding] = []
    if _is_test_code(path):
        return findings  # throw-away credentials of local test servers
    is_python = Path(path).suffix in _CODE_SUFFIXES
    prose = Path(path).suffix in _PROSE_SUFFIXES or line.lstrip().startswith(_COMMENT_STARTS)
    for m in _ASSIGNMENT.finditer(line):
        key, raw = m.group("key"), m.group("value")
        if key.lower() in _REFERENCE_KEYS or key.endswith("Name"):
            continue
        if prose and re.match(r"\s+[^\s#]", line[m.end() :]):
            continue  # a sentence ("password: the one from step 1"), not an assignment
        quoted = raw[:1] in "\"'" and raw[-1:] == raw[:1] and len(raw) >= 2
        if is_python and not quoted:
            continue  # Python: only a string literal is a literal; names and calls compute values.
        if is_placeholder(raw):
            continue
        findings.append(Finding(path, lineno, "password-assignment", line.strip()[:160]))
    return findings


def _fernet_like(token: str) -> bool:
    body = token[:-1]
    return any(c.islower() for c in body) and any(c.isupper() for c in body) and any(c.isdigit() for c in body)


def _scan_secret_manifests(path: str, text: str) -> list[Finding]:
    if Path(path).suffix not in _YAML_SUFFIXES or "kind: Secret" not in text:
        return []
    findings = []
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        return []
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") != "Secret":
            continue
        name = (doc.get("metadata") or {}).get("name", "?")
        for key, value in (doc.get("data") or {}).items():
            if value not in (None, ""):
                findings.append(Finding(path, 0, "secret-data", f"Secret {name}: data.{key} has a value"))
        for key, value in (doc.get("stringData") or {}).items():
            if value in (None, "") or is_placeholder(str(value)):
                continue
            if re.search(r"(?i)(^|[-_.])(user|username|login)$", str(key)):
                continue
            findings.append(Finding(path, 0, "secret-stringdata", f"Secret {name}: stringData.{key} has a value"))
    return findings


def scan_text(path: str, text: str) -> list[Finding]:
    """Every finding in one file's text; `path` is only used to report and to pick rules."""
    findings: list[Finding] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if _PRIVATE_KEY.search(line):
            findings.append(Finding(path, lineno, "private-key", line.strip()[:80]))
        if _AWS_KEY_ID.search(line):
            findings.append(Finding(path, lineno, "aws-access-key-id", line.strip()[:80]))
        if _AWS_SECRET.search(line):
            findings.append(Finding(path, lineno, "aws-secret-key", line.strip()[:80]))
        for rule, regex in _TOKENS:
            if regex.search(line):
                findings.append(Finding(path, lineno, rule, line.strip()[:80]))
        for m in _FERNET.finditer(line):
            if _fernet_like(m.group(1)):
                findings.append(Finding(path, lineno, "fernet-key", line.strip()[:80]))
        for m in _URL_CREDENTIALS.finditer(line):
            if not is_placeholder(m.group("pw")) and not _is_test_code(path):
                findings.append(Finding(path, lineno, "url-credentials", line.strip()[:160]))
        findings.extend(_scan_assignments(path, lineno, line))
    findings.extend(_scan_secret_manifests(path, text))
    return findings


def scan_file(root: Path, relpath: str) -> list[Finding]:
    path = root / relpath
    if not path.is_file() or path.stat().st_size > MAX_BYTES:
        return []
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return []  # binary
    return scan_text(relpath, data.decode("utf-8", errors="replace"))


def committable_files(root: Path) -> list[str]:
    """Tracked files plus untracked files that are not ignored: what a commit could contain."""
    files: set[str] = set()
    for args in (["ls-files", "-z"], ["ls-files", "-z", "--others", "--exclude-standard"]):
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, check=True).stdout
        files.update(p for p in out.decode("utf-8", errors="replace").split("\0") if p)
    return sorted(files)


def scan_repository(root: Path) -> list[Finding]:
    findings: list[Finding] = []
    for rel in committable_files(root):
        findings.extend(scan_file(root, rel))
    return findings
