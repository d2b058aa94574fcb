"""The REST API v1 (flask-smorest on the marshmallow schemas), its auth and console."""
