"""No secret value in any file this repository commits, and the scanner itself works.

Planted secrets below are assembled at run time (string concatenation, random bytes), so this
file never contains one and the repository scan stays clean.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess

import pytest

from tests.deployment.helpers import REPO_ROOT
from tests.deployment.secret_scan import is_placeholder, scan_file, scan_repository, scan_text


def test_repository_commits_no_secret_values():
    findings = scan_repository(REPO_ROOT)
    assert not findings, "secret values in committable files:\n" + "\n".join(map(str, findings))


def _random_password() -> str:
    return "Pw" + secrets.token_hex(8)


def _planted() -> dict[str, str]:
    pem = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEow" + secrets.token_hex(16) + "\n-----END RSA PRIVATE KEY-----\n"
    fernet = base64.urlsafe_b64encode(os.urandom(32)).decode()
    while not (
        any(c.islower() for c in fernet) and any(c.isupper() for c in fernet) and any(c.isdigit() for c in fernet)
    ):
        fernet = base64.urlsafe_b64encode(os.urandom(32)).decode()
    pw = _random_password()
    return {
        "key.pem": pem,
        "values.yaml": "auth:\n  pass" + f"word: {pw}\n",
        "quoted.yaml": "db:\n  " + "password" + f': "{pw}"\n',
        "app.env": "ARANGO_" + f"PASSWORD={pw}\n",
        "conn.json": '{"login": "root", "pass' + f'word": "{pw}"}}\n',
        "fernet.env": "AIRFLOW__CORE__FERNET_KEY" + f"={fernet}\n",
        "fernet-bare.txt": f"key is {fernet} here\n",
        "url.yaml": "connection: postgresql://airflow:" + pw + "@db:5432/airflow\n",
        "aws.txt": "id " + "AKIA" + "Z" * 4 + secrets.token_hex(6).upper() + "\n",
        "secret.yaml": (
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\ndata:\n  password: "
            + base64.b64encode(pw.encode()).decode()
            + "\n"
        ),
        "secret-string.yaml": (
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstringData:\n  jwt-secret: " + pw + "\n"
        ),
        "settings.py": "DB_PASS" + f'WORD = "{pw}"\n',
        "webhook.md": "https://hooks.slack.com/services/" + "T0AAAA/B0BBBB/" + secrets.token_hex(12) + "\n",
        "compose.yaml": "services:\n  db:\n    environment:\n      POSTGRES_" + f"PASSWORD: {pw}\n",
        "commented.yaml": "# old value, do not use:\n# pass" + f"word: {pw}\n",
        "readme.md": "Use `ARANGO_" + f"PASSWORD={pw}` to log in.\n",
    }


@pytest.mark.parametrize("name", sorted(_planted()))
def test_scanner_flags_a_planted_secret(tmp_path, name):
    (tmp_path / name).write_text(_planted()[name], encoding="utf-8")
    findings = scan_file(tmp_path, name)
    assert findings, f"scanner missed the planted secret in {name}"


def test_scanner_flags_a_planted_secret_in_a_git_repository(tmp_path):
    """End to end: an untracked, not-ignored file of a git work tree is scanned."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("ignored.env\n", encoding="utf-8")
    leak = "KAFKA_" + "PASSWORD=" + _random_password() + "\n"
    (tmp_path / "leak.env").write_text(leak, encoding="utf-8")
    (tmp_path / "ignored.env").write_text(leak, encoding="utf-8")
    found = {f.path for f in scan_repository(tmp_path)}
    assert found == {"leak.env"}


CLEAN = {
    # templates and references
    "template.yaml": ("stringData:\n  kafka-password: \"\"\n  arango-password: ''\n  kafka-user: streamforge-worker\n"),
    "k8s-secret.yaml": (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: t\ntype: Opaque\nstringData:\n"
        '  kafka-user: streamforge-worker\n  kafka-password: ""\n'
    ),
    "ref.yaml": (
        "env:\n  - name: KAFKA_PASSWORD\n    valueFrom:\n      secretKeyRef: {name: s, key: kafka-password}\n"
    ),
    "chart.yaml": (
        "secret:\n  - envName: X\n    secretName: s\n    secretKey: AIRFLOW_CONN_STREAMFORGE_KAFKA\n"
        "fernetKeySecretName: f\n"
    ),
    "placeholders.env": ("POSTGRES_PASSWORD=<set-me>\nJWT_SECRET=${AIRFLOW_JWT_SECRET:?set it}\nAPI_KEY=$API_KEY\n"),
    "compose.yaml": (
        "x:\n  ARANGO_PASSWORD: ${ARANGO_PASSWORD:?run init}\n"
        "  URL: postgresql+psycopg2://airflow:${POSTGRES_PASSWORD:?run init}@postgres:5432/airflow\n"
        '  CONN: \'{"password": "${ARANGO_PASSWORD:?x}"}\'\n'
    ),
    "docs.md": (
        "connection = postgresql+psycopg2://USER:PASSWORD@HOST:5432/DB\n"
        '--from-literal=kafka-password="$(openssl rand -hex 24)"\n'
    ),
    "gen.sh": 'echo "POSTGRES_PASSWORD=$(rand_hex 24)"\n',
    "prose.md": "# Workers. kafka-password: the value used in step 1.\n",
    "helm.yaml": "password: '{{ .Values.password }}'\n",
    "catalog.yaml": "keys:\n  KAFKA_PASSWORD: kafka-password\n  ARANGO_PASSWORD: arango-password\n",
    # code that makes passwords at run time
    "make_pw.py": ("import secrets\npassword = secrets.token_urlsafe(16)\nenv = {'ARANGO_PASSWORD': password}\n"),
    "tests/test_x.py": 'settings = load(ARANGO_PASSWORD="throwaway-test-value")\n',
    # identifiers that merely look long
    "ident.env": "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL=300\n",
}


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_scanner_accepts_placeholders_references_and_generated_values(name):
    assert scan_text(name, CLEAN[name]) == []


@pytest.mark.parametrize(
    "value", ["", "<set-me>", "${X:?y}", "$X", "{{ .Values.x }}", "PASSWORD", "null", "***", "...", "\u2026"]
)
def test_placeholders(value):
    assert is_placeholder(value)


@pytest.mark.parametrize("value", ["hunter2", "s3cr3t-Value", "admin"])
def test_literals_are_not_placeholders(value):
    assert not is_placeholder(value)
