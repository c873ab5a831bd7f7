import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# The first call of each kernel compiles (or loads from the cache): no deadline. The default profile runs a
# fixed set of examples (CI); FASTCONV_HYPOTHESIS=thorough runs many more, drawn anew each run.
settings.register_profile(
    "fastconv", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile(
    "thorough", deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)
_profile = os.environ.get("FASTCONV_HYPOTHESIS", "fastconv")
if _profile not in ("fastconv", "thorough"):
    raise ValueError(f"FASTCONV_HYPOTHESIS must be 'thorough' or unset, got {_profile!r}")
settings.load_profile(_profile)

# The tests check the built-in kernel rules: measured choices from this machine's `fastconv tune` stay out
# (an empty wisdom file path for this process and the processes it starts).
os.environ["FASTCONV_WISDOM"] = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"fastconv-tests-{os.getpid()}-none.json")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
