"""The AWS gateway in front of DynamoDB Local and the AWS emulator (see server.py)."""
