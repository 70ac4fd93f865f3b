"""The one-machine StreamForge stack: Apache Kafka, PostgreSQL, Airflow, an ArangoDB-compatible
server, a Binance replay server and a Kubernetes control plane, each a launcher with a CLI.

`streamforge up` / `streamforge demo` are built from these; the test suite's fixtures start the
same launchers. See docs/ARCHITECTURE.md ("The local stack").
"""
