"""Workspace-wide test setup."""

import os

# LiteLLM otherwise tries to download its price map on import; offline that costs
# seconds of retries before it falls back to the bundled copy we price from anyway.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
