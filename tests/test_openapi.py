"""The OpenAPI schema at /api/schema/ is valid and describes the clinic API as it works."""

import pytest
from drf_spectacular.validation import validate_schema


@pytest.fixture
def schema(client, db):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


STUDY_PATHS = {
    "/t/{tenant_slug}/api/studies/": "studies_search",
    "/t/{tenant_slug}/api/studies/{id}/": "studies_retrieve",
    "/t/{tenant_slug}/api/studies/{id}/storage/": "studies_storage",
}


def test_schema_is_valid_openapi(schema):
    validate_schema(schema)  # raises on an invalid document (drf-spectacular's JSON schema)


def test_lists_the_study_endpoints_with_path_parameters(schema):
    for path, operation_id in STUDY_PATHS.items():
        operation = schema["paths"][path]["get"]
        assert operation["operationId"] == operation_id
        params = {(p["in"], p["name"]): p for p in operation["parameters"]}
        assert params[("path", "tenant_slug")]["required"] is True
        if "{id}" in path:
            assert params[("path", "id")]["schema"]["type"] == "integer"
        assert set(operation["responses"]) >= {"200", "401", "403"}
        assert set(schema["paths"][path]) == {"get"}  # read-only
    search = schema["paths"]["/t/{tenant_slug}/api/studies/"]["get"]
    query = {p["name"] for p in search["parameters"] if p["in"] == "query"}
    assert query == {"name", "patient_id", "date_from", "date_to", "modality", "accession", "referring",
                     "sort", "after", "limit"}


def test_post_search_takes_the_filters_in_the_body(schema):
    operation = schema["paths"]["/t/{tenant_slug}/api/studies/search/"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/StudySearch")
    assert not [p for p in operation["parameters"] if p["in"] == "query"]
    assert operation["security"] == [{"bearerAuth": []}, {"cookieAuth": []}]


def test_bearer_token_or_session_security(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "description": schemes["bearerAuth"]["description"]}
    assert schemes["cookieAuth"]["in"] == "cookie"
    for path in STUDY_PATHS:
        # Either credential alone suffices: two alternatives, not one combined requirement.
        assert schema["paths"][path]["get"]["security"] == [{"bearerAuth": []}, {"cookieAuth": []}]


def test_serializers_are_documented(schema):
    components = schema["components"]["schemas"]
    study = components["StudyDetail"]["properties"]
    assert study["series"]["items"]["$ref"].endswith("/Series")
    assert "description" in study["patient_id"] and "description" in study["study_instance_uid"]
    assert components["StudyPage"]["properties"]["next"]["nullable"] is True
    assert "regions" in components["StorageState"]["properties"]
