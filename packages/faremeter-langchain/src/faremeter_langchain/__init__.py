"""faremeter for LangChain and LangGraph: price and attribute every run.

Add :class:`FaremeterCallbackHandler` to a run's callbacks, or wrap code in
``with track(...)``: every chat model, tool and retriever run is priced and
recorded with the real run tree and the run's attribution.
"""

from faremeter_langchain._handler import DEFAULT_METADATA_KEYS, FaremeterCallbackHandler
from faremeter_langchain._track import Tracking, track

__all__ = ["DEFAULT_METADATA_KEYS", "FaremeterCallbackHandler", "Tracking", "track"]
