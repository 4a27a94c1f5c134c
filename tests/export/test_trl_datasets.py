"""The exported file loads in Hugging Face ``datasets`` with one type per column."""

from __future__ import annotations

import pytest

from export.services import export_preferences_write_file


@pytest.mark.django_db
def test_loads_with_datasets_and_has_message_list_columns(export_data, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    path = tmp_path / "prefs.jsonl"
    export_preferences_write_file(path=path, filters={}, name="preferences")
    ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))

    assert ds.num_rows == 5
    for column in ("prompt", "chosen", "rejected"):
        feature = ds.features[column]
        assert isinstance(feature, datasets.List), feature
        assert set(feature.feature) == {"role", "content"}
        assert all(v.dtype == "string" for v in feature.feature.values())
    assert ds.features["margin"].dtype == "float64"
    assert ds.features["comparison_id"].dtype == "int64"
    assert ds.features["judgment_id"].dtype == "int64"
    assert ds.features["prompt_id"].dtype == "string"
    assert ds.features["rater_id"].dtype == "string"
    assert ds[0]["chosen"] == [{"role": "assistant", "content": "Paris."}]
    assert sorted(ds["margin"]) == [1.0, 1.0, 2.0, 3.0, 3.0]
