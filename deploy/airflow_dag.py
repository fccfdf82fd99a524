"""An Airflow DAG running the nightly job (copy into your DAGs folder and edit the paths).

Exit code 1 (findings crossed the fail level) fails the task on purpose so Airflow alerts;
use ``--fail-on never`` to keep the task green and rely on the email digest instead.
CODAT_API_KEY and SMTP_* come from the worker's environment (or an Airflow connection
exported as environment variables).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

AUDITOR = "/srv/auditor/.venv/bin/auditor"

with DAG(
    dag_id="codat_freshness_auditor",
    schedule="30 5 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 0, "execution_timeout": timedelta(hours=6)},
    tags=["codat", "data-quality"],
) as dag:
    run = BashOperator(
        task_id="auditor_run",
        bash_command=(
            f"{AUDITOR} run --config /etc/auditor/auditor.toml --store /srv/auditor/store "
            "--out /srv/auditor/reports/{{ ds }} --snoozes /etc/auditor/snoozes.toml "
            "--log-format json --progress off"
        ),
    )
    prune = BashOperator(
        task_id="auditor_prune",
        bash_command=f"{AUDITOR} prune --keep-days 90 --store /srv/auditor/store",
        trigger_rule="all_done",
    )
    run >> prune
