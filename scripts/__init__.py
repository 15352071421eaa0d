"""Scripts a developer runs through make (make screenshot); the tests use their helpers."""
