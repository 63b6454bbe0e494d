"""Read Prometheus exposition text in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample as (name, labels, value)."""
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of samples named `name` whose labels include `labels` (0 when none)."""
    return sum(
        sample_value
        for sample_name, sample_labels, sample_value in samples(text)
        if sample_name == name and all(sample_labels.get(key) == wanted for key, wanted in labels.items())
    )


def label_values(text: str, name: str, label: str) -> set[str]:
    return {
        sample_labels[label]
        for sample_name, sample_labels, _ in samples(text)
        if sample_name == name and label in sample_labels
    }
