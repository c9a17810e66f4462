"""The closed loop shown end to end: drifting traffic (:mod:`opsloop.loop.traffic`) and the
demo that deploys, monitors and heals a model (:mod:`opsloop.loop.demo`)."""
