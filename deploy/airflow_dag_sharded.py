"""An Airflow DAG running the nightly job in shards, one mapped task per shard (copy into your
DAGs folder and edit the paths).

Dynamic task mapping (``.partial(...).expand(...)``, Airflow 2.3+) makes ``SHARDS`` parallel
``auditor run --shard K/N`` tasks. Each collects its share of the companies into the night's
snapshot; the one that finishes last completes it, audits, writes the reports and
``results.json`` and mails the digest; the others exit 0 after collecting.

All workers must share one store: an object store URL (``--store s3://bucket/prefix``) or a
shared directory (NFS or similar).

Exit code 1 (findings crossed the fail level) fails the auditing shard's task on purpose so
Airflow alerts. CODAT_API_KEY and SMTP_* come from the workers' environment.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

AUDITOR = "/srv/auditor/.venv/bin/auditor"
SHARDS = 4
RUN = (
    f"{AUDITOR} run --config /etc/auditor/auditor.toml --store /srv/auditor/store "
    "--out /srv/auditor/reports/{{ ds }} --snoozes /etc/auditor/snoozes.toml "
    "--log-format json --progress off"
)

with DAG(
    dag_id="codat_freshness_auditor_sharded",
    schedule="30 5 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 0, "execution_timeout": timedelta(hours=6)},
    tags=["codat", "data-quality"],
) as dag:
    shards = BashOperator.partial(task_id="auditor_shard", max_active_tis_per_dag=SHARDS).expand(
        bash_command=[f"{RUN} --shard {k}/{SHARDS}" for k in range(SHARDS)]
    )
    prune = BashOperator(
        task_id="auditor_prune",
        bash_command=f"{AUDITOR} prune --keep-days 90 --store /srv/auditor/store",
        trigger_rule="all_done",
    )
    shards >> prune
