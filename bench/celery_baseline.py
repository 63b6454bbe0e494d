"""The brief's original design, for comparison: a Celery worker doing the same send as Herald's
dispatcher, one task per message.

The task loads the message row and the contact's phone, sends the stored Cloud API body to the
simulator over httpx (one pooled client per worker process) and writes the status back (`sent`
with the wamid, or `failed`) with its timeline event: the same work per message as Herald, with
Celery's defaults (prefork pool, one child per core, early acks).

Run by the benchmark as a real worker process:

    BENCH_CELERY_BROKER=redis://127.0.0.1:6379/14 DATABASE_URL=... WHATSAPP_API_BASE_URL=... \
        celery -A bench.celery_baseline worker --loglevel WARNING
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import psycopg
from celery import Celery
from celery.signals import worker_process_init

app = Celery("herald_celery_baseline", broker=os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/14"))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

_state: dict[str, Any] = {}

_LOAD = """
    SELECT m.body, c.phone FROM messages m JOIN contacts c ON c.id = m.contact_id
    WHERE m.id = %s AND m.status = 'queued'
"""
_SENT = """
    WITH updated AS (
        UPDATE messages SET status = 'sent', wamid = %s, sent_at = now(), attempts = attempts + 1,
               updated_at = now()
        WHERE id = %s RETURNING id
    )
    INSERT INTO message_status_events (message_id, status, occurred_at)
    SELECT id, 'sent', now() FROM updated ON CONFLICT (message_id, status) DO NOTHING
"""
_FAILED = """
    UPDATE messages SET status = 'failed', failed_at = now(), error_code = %s, attempts = attempts + 1,
           updated_at = now()
    WHERE id = %s
"""


@worker_process_init.connect
def _open_connections(**_: Any) -> None:
    # One database connection and one pooled HTTP client per prefork child (not shared across forks).
    _state["db"] = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    _state["http"] = httpx.Client(
        base_url=os.environ["WHATSAPP_API_BASE_URL"],
        headers={"Authorization": f"Bearer {os.environ['WHATSAPP_TOKEN']}"},
        timeout=10.0,
    )
    _state["path"] = f"/{os.environ.get('WHATSAPP_API_VERSION', 'v21.0')}/{os.environ['PHONE_NUMBER_ID']}/messages"


@app.task(name="bench.send_message")
def send_message(message_id: str) -> None:
    db: psycopg.Connection[Any] = _state["db"]
    row = db.execute(_LOAD, (message_id,)).fetchone()
    if row is None:
        return
    body, phone = row
    payload = {**body, "to": phone, "biz_opaque_callback_data": message_id}
    response = _state["http"].post(_state["path"], json=payload)
    if response.status_code == 200:
        db.execute(_SENT, (response.json()["messages"][0]["id"], message_id))
    else:
        code = response.json().get("error", {}).get("code")
        db.execute(_FAILED, (code, message_id))
