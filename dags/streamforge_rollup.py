"""Example downstream DAG: runs whenever a 1m candle load of the catalog emits its Asset event.

One DAG per catalog symbol with api_candles_1m (`streamforge_rollup__{symbol}_1h`), scheduled
on `binance/spot/{SYMBOL}/api_candles_1m`; it reads the event's extra (window, collections,
gaps) and writes hourly candles (orchestration/rollup.py). Parsing does no I/O beyond the catalog.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, BaseHook, task

from streamforge.orchestration.assets import data_asset
from streamforge.orchestration.catalog import load_catalog
from streamforge.orchestration.connections import arango_database, arango_url
from streamforge.orchestration.rollup import roll_up
from streamforge.orchestration.verify import open_database

for symbol, arango_id in sorted(
    {
        (spec.symbol, spec.settings.connections.arango)
        for spec in load_catalog(Path(__file__).with_name("streamforge_catalog.yaml")).dags
        if spec.data_type == "api_candles_1m"
    }
):
    asset = data_asset(symbol, "api_candles_1m")
    with DAG(
        dag_id=f"streamforge_rollup__{symbol.lower()}_1h",
        description=f"{symbol} hourly candles rolled up from each 1m load (example Asset consumer)",
        schedule=[asset],
        start_date=datetime(2017, 8, 17, tzinfo=UTC),
        catchup=False,
        tags=["streamforge", "example", symbol.lower()],
    ) as dag:

        @task(task_id="roll_up")
        def roll_up_task(symbol: str = symbol, arango_id: str = arango_id, **context: Any) -> int:
            conn = BaseHook.get_connection(arango_id)
            db = open_database(arango_url(conn), arango_database(conn), conn.login, conn.password)
            written = 0
            for event in context["triggering_asset_events"][data_asset(symbol, "api_candles_1m")]:
                written += roll_up(db, symbol, event.extra)
            return written

        roll_up_task()
    globals()[dag.dag_id] = dag
