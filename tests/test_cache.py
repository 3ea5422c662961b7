"""The bounded cache every worker-level memory uses."""

import threading

import pytest

from survey.cache import BoundedCache


def test_the_least_recently_used_entry_goes_first():
    cache: BoundedCache[str, int] = BoundedCache(3)
    for i, key in enumerate("abc"):
        cache.put(key, i)
    cache.put("d", 3)
    assert "a" not in cache
    assert [cache.get(key) for key in "bcd"] == [1, 2, 3]


def test_a_hit_refreshes_recency():
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert "b" not in cache
    assert cache.get("a") == 1
    assert cache.get("c") == 3


def test_putting_an_existing_key_replaces_and_refreshes_it():
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    cache.put("c", 3)
    assert cache.get("a") == 10
    assert "b" not in cache
    assert len(cache) == 2


def test_size_never_exceeds_maxsize():
    cache: BoundedCache[int, int] = BoundedCache(5)
    for i in range(100):
        cache.put(i, i)
        assert len(cache) <= 5
    assert len(cache) == 5
    assert [cache.get(i) for i in range(95, 100)] == list(range(95, 100))
    assert cache.get(94) is None


def test_get_pop_clear_and_defaults():
    cache: BoundedCache[str, int] = BoundedCache(4)
    assert cache.get("x") is None
    assert cache.get("x", 7) == 7
    assert cache.put("x", 1) == 1
    assert cache.pop("x") == 1
    assert cache.pop("x", "gone") == "gone"
    cache.put("y", 2)
    cache.clear()
    assert len(cache) == 0
    assert cache.get("y") is None


def test_a_falsy_value_is_a_hit():
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("zero", 0)
    assert cache.get("zero", 99) == 0


def test_maxsize_must_be_positive():
    with pytest.raises(ValueError):
        BoundedCache(0)


def test_threads_sharing_a_cache_keep_it_bounded_and_consistent():
    cache: BoundedCache[tuple[int, int], int] = BoundedCache(50)
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for i in range(2000):
                key = (thread, i % 80)
                cache.put(key, i)
                value = cache.get(key)
                assert value is None or value % 80 == i % 80
                cache.get((thread - 1, i % 80))
                if i % 97 == 0:
                    cache.pop((thread, (i + 1) % 80))
                assert len(cache) <= 50
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) <= 50


def test_block_settings_stay_bounded_and_keep_the_key_of_a_block_in_use(app):
    from survey.participant import answers
    from survey.participant.hotdb import hot_path

    with app.app_context():
        kept = hot_path.state()
        kept.block_settings = BoundedCache(3)
        kept.settings_by_key = BoundedCache(2)
        settings, key = answers._block_settings(1, "rate", None)
        for block_id in (2, 3):
            answers._block_settings(block_id, "rate", {"n_identities": 10 + block_id})
        assert len(kept.block_settings) == 3
        assert len(kept.settings_by_key) == 2
        assert kept.settings_by_key.get(key) is None
        # Block 1 shown again (a hit): its key, which a ticket may name, is known again.
        assert answers._block_settings(1, "rate", None) == (settings, key)
        assert kept.settings_by_key.get(key) == settings
        # Changed stored settings are never served from the cache.
        changed, changed_key = answers._block_settings(1, "rate", {"n_identities": 15})
        assert changed["n_identities"] == 15
        assert changed_key != key
