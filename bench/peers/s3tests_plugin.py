"""A pytest plugin for ceph/s3-tests (`-p s3tests_plugin`), loaded from this folder: one fix to its cleanup.

s3-tests empties every bucket it made with DeleteObjects(BypassGovernanceRetention=True) before each test
and after it. LocalStack refuses that flag (the header is not implemented there), so the cleanup failed and
every test after the first errored in set-up, measuring the cleanup instead of the API. When the flagged
call is refused, the bucket is emptied again without the flag (an object under governance retention then
stays, and the test that locked it reports that, as on any server that enforces it).
"""

from botocore.exceptions import ClientError


def pytest_configure(config):
    import s3tests.functional as functional

    upstream = functional.nuke_bucket

    def nuke_bucket(client, bucket):
        try:
            return upstream(client, bucket)
        except ClientError:
            pass
        for objects in functional.list_versions(client, bucket, 128):
            client.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
        client.delete_bucket(Bucket=bucket)

    functional.nuke_bucket = nuke_bucket
