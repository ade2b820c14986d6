// Starts Swagger UI (bundled from npm's swagger-ui-dist by the build, nothing from a CDN) on
// this server's OpenAPI document. "Try it out" calls this same origin; "Authorize" takes a
// bearer token from POST /api/v1/auth/login or an API token.
window.addEventListener('DOMContentLoaded', function () {
  window.ui = SwaggerUIBundle({
    url: '/api/v1/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    persistAuthorization: true,
    displayRequestDuration: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
  });
});
