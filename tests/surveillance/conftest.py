"""The audit writer fixture that the audit test files share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from surveillance.audit_native import NO_EXTENSIONS_ENV, load_cwriter


@pytest.fixture(scope="module", params=["python", "c"])
def writer(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run each test with the Python writer and with the C writer (surveillance._cwriter).

    A test file takes it with ``pytestmark = pytest.mark.usefixtures("writer")``.
    """
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "python":
            patch.setenv(NO_EXTENSIONS_ENV, "1")
        elif load_cwriter() is None:
            pytest.skip(f"surveillance._cwriter is not built or {NO_EXTENSIONS_ENV} is set")
        yield request.param
