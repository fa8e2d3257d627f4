"""A user's test file using the plugin's `redis` fixture (named so the suite does not collect it). Run by tests/test_redis.py."""


def test_redis_fixture_is_the_namespace_database(redis, localdev_env):
    prefix = localdev_env["REDIS_KEY_PREFIX"]
    assert prefix == localdev_env["LOCALDEV_NAMESPACE"] + ":"
    assert redis.set(prefix + "greeting", "hi", ex=60) is True
    assert redis.get(prefix + "greeting") == "hi"
    assert 0 < redis.ttl(prefix + "greeting") <= 60


def test_the_keys_of_the_session_stay_and_nothing_else_is_seen(redis, localdev_env):
    prefix = localdev_env["REDIS_KEY_PREFIX"]
    assert list(redis.scan_iter()) == [prefix + "greeting"]
