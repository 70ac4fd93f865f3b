"""StreamForge: Binance market data through Kafka into ArangoDB, orchestrated by Apache Airflow."""
