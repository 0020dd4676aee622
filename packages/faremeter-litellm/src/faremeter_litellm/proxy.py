"""Entry point for the LiteLLM proxy's ``litellm_settings.callbacks``.

.. code-block:: yaml

    litellm_settings:
      callbacks: faremeter_litellm.proxy.handler

The proxy imports this module and takes its ``handler`` attribute. The meter
is built from the environment like any ``Meter()``: set
``FAREMETER_LEDGER_URL=postgresql://...`` so every proxy replica records into
one shared ledger (or ``FAREMETER_CONFIG`` for a ``faremeter.toml``). Spans
carry the proxy's key attribution (``user_id``, ``team_id``, ``team``,
``api_key_alias``, ``end_user``) and the request's ``metadata``.
"""

from __future__ import annotations

import os

from faremeter_litellm._logger import FaremeterLogger

__all__ = ["handler"]

handler = FaremeterLogger(None)
if _environment := os.environ.get("FAREMETER_ENVIRONMENT"):
    handler.recorder.calls.attributes = {**handler.recorder.attributes, "environment": _environment}
"""The logger instance the proxy registers (records into ``faremeter.get_meter()``)."""
