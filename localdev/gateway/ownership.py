"""What the registry knows for the gateway: which namespace an access key is, and which namespace owns a bucket.

The tables live beside `namespaces` in the registry database (SCHEMA, run by `Namespaces` with its own).
A bucket's record goes with its namespace (ON DELETE CASCADE); every change to either table is announced
on the channel `localdev_gateway` (a trigger), so the gateway's caches drop a deleted namespace's key as
soon as its `ns delete` starts (the row turns 'deleting').
"""

from __future__ import annotations

CHANNEL = "localdev_gateway"

SCHEMA = f"""
CREATE INDEX IF NOT EXISTS namespaces_aws_key ON namespaces ((secrets->'aws'->>'access_key_id'));
CREATE TABLE IF NOT EXISTS aws_buckets (
    bucket     text PRIMARY KEY,
    namespace  text NOT NULL REFERENCES namespaces (name) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS aws_buckets_namespace ON aws_buckets (namespace);
CREATE OR REPLACE FUNCTION localdev_gateway_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'namespaces' THEN
        PERFORM pg_notify('{CHANNEL}', 'ns:' || COALESCE(OLD.name, NEW.name));
    ELSE
        PERFORM pg_notify('{CHANNEL}', 'bucket:' || COALESCE(OLD.bucket, NEW.bucket));
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER namespaces_gateway_notify AFTER INSERT OR UPDATE OR DELETE ON namespaces
    FOR EACH ROW EXECUTE FUNCTION localdev_gateway_notify();
CREATE OR REPLACE TRIGGER aws_buckets_gateway_notify AFTER INSERT OR UPDATE OR DELETE ON aws_buckets
    FOR EACH ROW EXECUTE FUNCTION localdev_gateway_notify();
"""


def namespace_of_key(conn, access_key: str) -> tuple[str, str] | None:
    """(namespace, secret access key) for a namespace's access key id, unless it is being deleted."""
    return conn.execute(
        "SELECT name, secrets->'aws'->>'secret_access_key' FROM namespaces "
        "WHERE secrets->'aws'->>'access_key_id' = %s AND state <> 'deleting'", (access_key,)).fetchone()


def bucket_owner(conn, bucket: str) -> str | None:
    row = conn.execute("SELECT namespace FROM aws_buckets WHERE bucket = %s", (bucket,)).fetchone()
    return row[0] if row else None


def record_bucket(conn, bucket: str, namespace: str) -> None:
    """The emulator said `namespace` now holds `bucket` (it created it; a name freed elsewhere may move)."""
    conn.execute("INSERT INTO aws_buckets (bucket, namespace) VALUES (%s, %s) ON CONFLICT (bucket) "
                 "DO UPDATE SET namespace = EXCLUDED.namespace, created_at = now()", (bucket, namespace))


def forget_bucket(conn, bucket: str, namespace: str) -> None:
    conn.execute("DELETE FROM aws_buckets WHERE bucket = %s AND namespace = %s", (bucket, namespace))
