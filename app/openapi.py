"""Document the error responses every API operation really sends: RFC 9457 problem details."""

from __future__ import annotations

from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Reference, Schema

PROBLEM_STATUSES = {
    "400": "The request is malformed or a field is not valid",
    "401": "Sign-in required",
    "403": "Not allowed for this role, or the CSRF token is missing",
    "404": "Not found (or outside the caller's scope)",
    "405": "Method not allowed",
    "409": "Conflicts with existing data or a concurrent change",
    "413": "Upload too large",
    "415": "Unsupported content type",
    "422": "Understood but breaks a business rule",
    "429": "Too many attempts; see Retry-After",
}

PROBLEM = Schema(
    type=OpenAPIType.OBJECT,
    required=["type", "title", "status", "detail"],
    properties={
        "type": Schema(type=OpenAPIType.STRING),
        "title": Schema(type=OpenAPIType.STRING, description="Short summary in the reader's language"),
        "status": Schema(type=OpenAPIType.INTEGER),
        "detail": Schema(type=OpenAPIType.STRING, description="What went wrong and what to do, for a person"),
        "errors": Schema(
            type=OpenAPIType.ARRAY,
            items=Schema(type=OpenAPIType.OBJECT, description="One problem with one field or row"),
        ),
    },
    description="Problem details (RFC 9457)",
)


def document_problems(schema: OpenAPI) -> OpenAPI:
    """Replace Litestar's default 400 body and add the other error statuses to every operation."""
    if schema.components.schemas is None:
        schema.components.schemas = {}
    schema.components.schemas["ProblemDetails"] = PROBLEM
    ref = Reference(ref="#/components/schemas/ProblemDetails")
    for item in (schema.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            responses = operation.responses if operation.responses is not None else {}
            for status, description in PROBLEM_STATUSES.items():
                responses[status] = OpenAPIResponse(
                    description=description,
                    content={"application/problem+json": OpenAPIMediaType(schema=ref)},
                )
            operation.responses = responses
    return schema
