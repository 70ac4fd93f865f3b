"""`python -m streamforge.contracts write-schemas` regenerates the shipped JSON Schemas."""

import json
import sys
from pathlib import Path

from streamforge.contracts.messages import json_schemas

SCHEMA_DIR = Path(__file__).parent / "schemas"


def render() -> dict[str, str]:
    return {name: json.dumps(schema, indent=2, sort_keys=True) + "\n" for name, schema in json_schemas().items()}


def main(argv: list[str]) -> int:
    if argv[1:] != ["write-schemas"]:
        print("usage: python -m streamforge.contracts write-schemas", file=sys.stderr)
        return 2
    for name, text in render().items():
        (SCHEMA_DIR / name).write_text(text)
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
