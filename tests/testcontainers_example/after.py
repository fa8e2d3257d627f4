"""An application's tests as testcontainers-python 4.15 users write them: a private container per service.

after.py is this file with only the import lines changed (tests/test_testcontainers.py checks that, and runs
it against a real cluster). The images are configurable, as suites often make them; bench/testcontainers_vs_localdev.py
runs this file on Podman with stand-in images, since none can be pulled there.
"""

import os

import psycopg
import pytest
from localdev.testcontainers import LocalStackContainer
from localdev.testcontainers import MongoDbContainer
from localdev.testcontainers import PostgresContainer

POSTGRES_IMAGE = os.environ.get("POSTGRES_IMAGE", "postgres:16")
MONGO_IMAGE = os.environ.get("MONGO_IMAGE", "mongo:7.0")
LOCALSTACK_IMAGE = os.environ.get("LOCALSTACK_IMAGE", "localstack/localstack:4.14.0")
ROUNDS = range(int(os.environ.get("ROUNDS", "4")))  # tests per service, so xdist workers share them out


@pytest.fixture(scope="module")
def postgres():
    with PostgresContainer(POSTGRES_IMAGE, driver=None) as container:
        yield container


@pytest.fixture(scope="module")
def mongo():
    with MongoDbContainer(MONGO_IMAGE) as container:
        yield container


@pytest.fixture(scope="module")
def localstack():
    with LocalStackContainer(image=LOCALSTACK_IMAGE).with_services("s3", "sqs", "dynamodb") as container:
        yield container


@pytest.mark.parametrize("n", ROUNDS)
def test_orders_total(postgres, n):
    with psycopg.connect(postgres.get_connection_url()) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, round int, total numeric NOT NULL)")
        conn.execute("INSERT INTO orders VALUES (%s, %s, 12.50), (%s, %s, 7.25)", (2 * n, n, 2 * n + 1, n))
        assert conn.execute("SELECT sum(total)::text FROM orders WHERE round = %s", (n,)).fetchone() == ("19.75",)
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (postgres.username,
                                                                                      postgres.dbname)


@pytest.mark.parametrize("n", ROUNDS)
def test_restaurants(mongo, n):
    db = mongo.get_connection_client().test
    db.restaurants.insert_one({"name": f"Vella {n}", "cuisine": "Italian", "restaurant_id": f"12345{n}"})
    assert db.restaurants.find_one({"name": f"Vella {n}"}, {"_id": 0}) == {
        "name": f"Vella {n}", "cuisine": "Italian", "restaurant_id": f"12345{n}"}
    assert db.restaurants.count_documents({"name": f"Vella {n}"}) == 1


@pytest.mark.parametrize("n", ROUNDS)
def test_invoices_bucket_and_queue(localstack, n):
    s3 = localstack.get_client("s3")
    where = {} if localstack.region_name == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": localstack.region_name}}
    s3.create_bucket(Bucket=f"invoices-{n}", **where)
    s3.put_object(Bucket=f"invoices-{n}", Key="2026/01.txt", Body=b"total: 19.75")
    assert s3.get_object(Bucket=f"invoices-{n}", Key="2026/01.txt")["Body"].read() == b"total: 19.75"
    sqs = localstack.get_client("sqs")
    url = sqs.create_queue(QueueName=f"invoices-{n}")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="invoice 1")
    [message] = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert message["Body"] == "invoice 1"


@pytest.mark.parametrize("n", ROUNDS)
def test_sessions_table(localstack, n):
    dynamodb = localstack.get_client("dynamodb")
    dynamodb.create_table(TableName=f"sessions-{n}", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    dynamodb.put_item(TableName=f"sessions-{n}", Item={"id": {"S": "s1"}, "user": {"S": "alice"}})
    item = dynamodb.get_item(TableName=f"sessions-{n}", Key={"id": {"S": "s1"}})["Item"]
    assert item == {"id": {"S": "s1"}, "user": {"S": "alice"}}
