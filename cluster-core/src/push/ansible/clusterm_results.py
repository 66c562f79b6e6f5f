# Callback plugin shipped by clusterm: writes per-host results of an ansible-playbook
# run as JSON lines to the file named by CLUSTERM_RESULTS_FILE, next to whatever stdout
# callback prints the human log. Records: {"event": "failed" | "unreachable", "host",
# "task", "msg"} for each failed task (ignored failures excluded) and one
# {"event": "stats", "hosts": {name: summary}} at the end of the playbook.

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: clusterm_results
    type: aggregate
    short_description: per-host results for clusterm as JSON lines
    description:
      - Writes failed tasks and the final per-host summary to CLUSTERM_RESULTS_FILE.
    requirements:
      - enabled in callbacks_enabled
"""

MAX_MSG = 2000


def _message(result):
    if not isinstance(result, dict):
        return str(result)
    for key in ("msg", "stderr", "reason", "stdout"):
        value = result.get(key)
        if value:
            return str(value)
    for item in result.get("results") or []:
        if isinstance(item, dict) and item.get("failed"):
            return _message(item)
    return "failed"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "clusterm_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        path = os.environ.get("CLUSTERM_RESULTS_FILE")
        self._out = open(path, "a", encoding="utf-8") if path else None

    def _emit(self, record):
        if self._out is None:
            return
        self._out.write(json.dumps(record, default=str) + "\n")
        self._out.flush()

    def _task_record(self, event, result):
        self._emit(
            {
                "event": event,
                "host": result._host.get_name(),
                "task": result._task.get_name(),
                "msg": _message(result._result)[:MAX_MSG],
            }
        )

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not ignore_errors:
            self._task_record("failed", result)

    def v2_runner_on_unreachable(self, result):
        self._task_record("unreachable", result)

    def v2_playbook_on_stats(self, stats):
        hosts = {name: stats.summarize(name) for name in sorted(stats.processed)}
        self._emit({"event": "stats", "hosts": hosts})
