"""/docs and /openapi.json: the page works offline and the document describes the served model."""

from starlette.testclient import TestClient


def test_the_page_and_its_assets_load_without_the_internet(iris_app: TestClient) -> None:
    page = iris_app.get("/docs")
    assert page.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "http" not in page.text.split("<body>")[1].replace("/openapi.json", "")  # no CDN
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert iris_app.get(f"/docs/assets/{asset}").status_code == 200


def test_the_document_names_the_served_models_features(iris_app: TestClient) -> None:
    document = iris_app.get("/openapi.json").json()
    assert "iris-classifier version 1" in document["info"]["description"]
    features = document["components"]["schemas"]["Features"]
    assert features["required"] == [
        "sepal length (cm)",
        "sepal width (cm)",
        "petal length (cm)",
        "petal width (cm)",
    ]
    assert "/openapi.json" not in document["paths"]
    assert "/docs" not in document["paths"]
