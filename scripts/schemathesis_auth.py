"""Schemathesis auth for finance-server: a fresh token for every test case.

Fuzzing calls POST /api/auth/logout, which revokes the token it presents, so
one static token would leave the rest of the run testing nothing but 401s.
"""

import os

import requests
import schemathesis


@schemathesis.auth()
class FreshToken:
    def get(self, case, context):
        response = requests.post(
            os.environ["FINANCE_BASE_URL"] + "/api/auth/login",
            json={
                "email": os.environ["FINANCE_EMAIL"],
                "password": os.environ["FINANCE_PASSWORD"],
            },
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
