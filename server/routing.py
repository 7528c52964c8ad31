"""A Route that records its path template in the scope, so metrics label by template."""

from starlette.routing import Match, Route
from starlette.types import Scope


class TemplatedRoute(Route):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route_template"] = self.path
        return match, child_scope
