"""The web console and the tenant portal at /ui/ (SPEC §9), on relay's own listener.

Server-rendered pages (Jinja2, autoescaped) over relay.operations, the same tenant-scoped
operations the JSON API calls: what a page may show or change is decided there, once.

Pages that act in a tenant live under /ui/t/{tenant}/: an operator may open any tenant,
a portal session only its own (another tenant's pages are a plain 404 that names
nothing). The overview, which counts across tenants, is the operator's alone.

The modules, each importing only those listed after it: `routes` (the route table),
the pages by what they show (`signin`, `overview`, `endpoints`, `deliveries`, `events`,
`event_types`, `tenants`, `keys`),
`answers` (the wrapper every page runs in, templates, redirects, the error page),
`security` (who is looking: the session cookie, sign-in, CSRF, the headers every answer
carries), `forms` (forms and query strings to the operations' models and back) and
`chart` (the overview's SVG).
"""
