"""Durations, sizes and flow shorthand in the spec models."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from zerodrift.spec.models import (
    Flow,
    HealthCheck,
    Resources,
    parse_duration,
    parse_size,
)

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SIZES = {"": 1, "k": 1000, "Ki": 1024, "M": 10**6, "Mi": 2**20, "G": 10**9, "Gi": 2**30}


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(sorted(UNITS)))
def test_duration_with_unit_is_seconds(number: int, unit: str) -> None:
    assert parse_duration(f"{number}{unit}") == number * UNITS[unit]
    assert HealthCheck(tcp="http", interval=f"{number}{unit}").interval == (
        number * UNITS[unit]
    )


@given(st.integers(min_value=0, max_value=10**12))
def test_integer_duration_passes_through(seconds: int) -> None:
    assert parse_duration(seconds) == seconds


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(sorted(SIZES)),
    st.sampled_from(["", "B", "b"]),
)
def test_size_with_unit_is_bytes(number: int, unit: str, suffix: str) -> None:
    assert parse_size(f"{number}{unit}{suffix}") == number * SIZES[unit]
    assert Resources(memory=f"{number}{unit}").memory == number * SIZES[unit]


@pytest.mark.parametrize("text", ["5", "5 minutes", "-5s", "1.5h", "5y", "", "s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HealthCheck(tcp="http", interval=text)
    assert "duration" in str(caught.value)


@pytest.mark.parametrize("text", ["lots", "1.5G", "-1M", "1T", "Mi"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Resources(memory=text)
    assert "size" in str(caught.value)


def test_negative_integer_duration_is_refused() -> None:
    with pytest.raises(ValidationError):
        HealthCheck(tcp="http", interval=-1)


@pytest.mark.parametrize(
    ("shorthand", "service", "port"),
    [("api:http", "api", "http"), ("db:5432", "db", 5432)],
)
def test_flow_shorthand(shorthand: str, service: str, port: str | int) -> None:
    flow = Flow.model_validate(Flow.parse_shorthand(shorthand))
    assert (flow.service, flow.port) == (service, port)
