import time
from .e2e_support import knowledge_service, extra_service  # noqa: F401

def test_probe(extra_service):
    for q in ["What did the moderator post when Mythos 5 was suspended?", "Who pinged everyone about the shutdown?", "What did Reuters report?"]:
        t=time.perf_counter(); a = extra_service.ask(q); print(time.perf_counter()-t, q, a.abstained, a.reason)
        for e in a.excerpts: print("   ", e.source.article_id, repr(e.quote[:300]))
    print(extra_service.info())
