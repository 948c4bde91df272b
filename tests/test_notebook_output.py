"""How kafkabench talks in a notebook: its warnings as one plain line each on stdout (never a
stderr box), silent once the application configured logging itself. Pure: no broker."""

from __future__ import annotations

import logging

from kafkabench.core.log import in_jupyter_kernel, warnings_as_lines


def _fresh(name: str, monkeypatch) -> logging.Logger:
    logger = logging.getLogger(name)
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as in a kernel nobody configured
    return logger


def test_a_warning_is_one_line_on_stdout_and_nothing_on_stderr(monkeypatch, capsys):
    logger = _fresh("kbtest.lines", monkeypatch)
    assert warnings_as_lines("kbtest.lines") is True
    logger.warning("broker metrics: %s did not answer", "broker 1")
    logger.info("not shown: below WARNING")
    out, err = capsys.readouterr()
    assert out == "kafkabench warning: broker metrics: broker 1 did not answer\n"
    assert err == ""


def test_the_handler_is_added_once_and_steps_aside_for_configured_logging(monkeypatch, capsys):
    logger = _fresh("kbtest.configured", monkeypatch)
    assert warnings_as_lines("kbtest.configured") is True
    assert warnings_as_lines("kbtest.configured") is False  # already has a handler
    assert len(logger.handlers) == 1
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [logging.NullHandler()])  # the application's own setup
    logger.warning("shown by the application's handlers only")
    assert capsys.readouterr() == ("", "")


def test_pytest_is_not_a_jupyter_kernel():
    assert in_jupyter_kernel() is False
