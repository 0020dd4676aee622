from __future__ import annotations

import os

# LiteLLM fetches its price map from GitHub at import unless told not to;
# offline that costs ~8 s of retries per process.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
