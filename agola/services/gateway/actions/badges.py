"""Project badges (spec §6.9): the state of the last run of a branch as a shields.io-style SVG."""

from __future__ import annotations

from urllib.parse import quote

from agola.services.gateway.actions import Services
from agola.services.gateway.auth import Identity
from agola.services.gateway.permissions import can_view, deny
from agola.types.runservice import Run, RunPhase, RunResult

# state -> (text, color)
BADGES = {
    "unknown": ("unknown", "#9f9f9f"),
    "error": ("error", "#dfb317"),
    "inprogress": ("in progress", "#007ec6"),
    "success": ("success", "#4c1"),
    "failed": ("failed", "#e05d44"),
}


def badge_state(run: Run | None) -> str:
    if run is None:
        return "unknown"
    if run.phase == RunPhase.SETUP_ERROR:
        return "error"
    if run.phase in (RunPhase.QUEUED, RunPhase.RUNNING):
        return "inprogress"
    if run.phase == RunPhase.CANCELLED:
        return "failed"
    if run.result == RunResult.SUCCESS:
        return "success"
    if run.result in (RunResult.FAILED, RunResult.STOPPED):
        return "failed"
    return "unknown"


def _width(text: str) -> int:
    return 10 + 7 * len(text)


def render_badge(state: str, label: str = "run") -> str:
    text, color = BADGES[state]
    lw, rw = _width(label), _width(text)
    total = lw + rw
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{label}: {text}">'
        f'<title>{label}: {text}</title>'
        f'<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        f'<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/>'
        f'<rect x="{lw}" width="{rw}" height="20" fill="{color}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        f'<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{lw / 2}" y="14">{label}</text><text x="{lw + rw / 2}" y="14">{text}</text></g></svg>'
    )


async def project_badge(svc: Services, ident: Identity, project_ref: str, branch: str) -> str:
    project = await svc.configstore.get_project(project_ref)
    # Badges need no login, but a private project's state is for its members only.
    if not await can_view(svc.configstore, ident, project.global_visibility, project.owner_type, project.owner_id):
        raise deny(ident, "see this project")
    group = f"/project/{project.project.id}/branch"
    if branch:
        group += "/" + quote(branch, safe="")
    runs, _ = await svc.runservice.list_runs(groups=[group], limit=1, asc=False)
    return render_badge(badge_state(runs[0] if runs else None))
