"""HTTP routes, one module per feature, each with its own APIRouter."""
