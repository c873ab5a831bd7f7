import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# The first call of each kernel compiles (or loads from the cache): no deadline.
settings.register_profile(
    "fastconv", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("fastconv")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


