# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Callback for the controller tests: records what ran, and stops the run once validation is over.

Writes one JSON object per line to $PYDEPLOY_RECORD: play starts, task starts, and every failed or
unreachable result (host, task, its file, message, the validate_vars problems). The first play whose
name matches $PYDEPLOY_VALIDATION_PLAY (default: "check|validat") is the validation play. When a
task of any later play is about to start, the callback records it as `after_validation` and ends
the process with exit code 97 before that task runs: the tests run the real playbooks against
`ansible_connection: local` and must never let a task that changes a host run on the controller.

Every record carries `seq`, the number of task starts so far: the linear strategy runs a task on
every host before the next one starts, so the failures of one task share its `seq`.

With PYDEPLOY_BATCH=1 (a batch of cases, each on hosts of its own, tests/controller/harness.py
run_batch) the validation play's any_errors_fatal is turned off for this run only, so that one
case's failure does not stop the others; the harness then keeps, per case, only the failures of
the first task that failed on one of its hosts, which is what any_errors_fatal lets through.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: pydeploy_record
type: aggregate
short_description: Record tasks and failures, stop after the validation play (controller tests only)
description:
  - Used by tests/controller; not part of the collection.
requirements:
  - PYDEPLOY_RECORD set to a writable file
"""

import json
import os
import re

from ansible.plugins.callback import CallbackBase

REACHED_RC = 97


def _text(value):
    try:
        return str(value)
    except Exception:  # pylint: disable=broad-except
        return repr(value)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "pydeploy_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._path = os.environ.get("PYDEPLOY_RECORD")
        self._pattern = re.compile(os.environ.get("PYDEPLOY_VALIDATION_PLAY", "check|validat"), re.I)
        self._play_index = -1
        self._validation_index = None
        self._play_name = ""
        self._stop = os.environ.get("PYDEPLOY_STOP_AFTER_VALIDATION", "1") == "1"
        self._batch = os.environ.get("PYDEPLOY_BATCH") == "1"
        self._seq = 0

    def _write(self, **record):
        if not self._path:
            return
        record["play_index"] = self._play_index
        record["play"] = self._play_name
        record["seq"] = self._seq
        with open(self._path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=_text) + "\n")

    def v2_playbook_on_play_start(self, play):
        self._play_index += 1
        self._play_name = _text(play.get_name())
        if self._validation_index is None and self._pattern.search(self._play_name):
            self._validation_index = self._play_index
            if self._batch:  # on the play and on the play its blocks were loaded with (the strategy runs a copy)
                for target in {id(p): p for p in [play] + [b._play for b in play.tasks if getattr(b, "_play", None)]}.values():
                    target.any_errors_fatal = False
        self._write(event="play_start", validation=self._validation_index == self._play_index)

    def _task_start(self, task, handler=False):
        self._seq += 1
        path = _text(task.get_path() or "")
        role = _text(task._role.get_name()) if task._role else ""
        self._write(event="task_start", task=_text(task.get_name()), action=_text(task.action), path=path, role=role,
                    handler=handler)
        if self._validation_index is not None and self._play_index > self._validation_index:
            self._write(event="after_validation", task=_text(task.get_name()), action=_text(task.action), path=path)
            if self._stop:
                os._exit(REACHED_RC)  # pylint: disable=protected-access

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._task_start(task, handler=True)

    def _failure(self, result, event):
        res = result._result  # pylint: disable=protected-access
        task = result._task  # pylint: disable=protected-access
        self._write(event=event, host=_text(result._host.get_name()),  # pylint: disable=protected-access
                    task=_text(task.get_name()), action=_text(task.action), path=_text(task.get_path() or ""),
                    msg=_text(res.get("msg", "")), problems=res.get("problems"),
                    results=[_text(r.get("msg", "")) for r in res.get("results", []) if isinstance(r, dict)])

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not ignore_errors:
            self._failure(result, "failed")

    def v2_runner_item_on_failed(self, result):
        self._failure(result, "item_failed")

    def v2_runner_on_unreachable(self, result):
        self._failure(result, "unreachable")

    def v2_runner_on_ok(self, result):
        res = result._result  # pylint: disable=protected-access
        task = result._task  # pylint: disable=protected-access
        if _text(task.action).endswith("validate_vars"):
            self._write(event="validated", host=_text(result._host.get_name()),  # pylint: disable=protected-access
                        task=_text(task.get_name()), normalized=res.get("normalized"), unknown=res.get("unknown"))
        warnings = res.get("warnings")
        if warnings:
            self._write(event="warnings", host=_text(result._host.get_name()),  # pylint: disable=protected-access
                        task=_text(result._task.get_name()), warnings=[_text(w) for w in warnings])  # pylint: disable=protected-access
