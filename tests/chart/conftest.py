"""Fixtures: the chart rendered once per values set (defaults and every values/ file)."""

import pytest
from support.render import VALUE_SETS, Rendered, render


@pytest.fixture(params=sorted(VALUE_SETS), scope="session")
def value_set(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def rendered(value_set: str) -> Rendered:
    return render(VALUE_SETS[value_set])


@pytest.fixture(scope="session")
def defaults() -> Rendered:
    return render()
