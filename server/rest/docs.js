// The API explorer's start: Swagger UI over the REST API's description, from this origin
// only. A file of its own, not an inline script, so that the page's Content-Security-Policy
// allows scripts from this origin and nothing else.
window.ui = SwaggerUIBundle({
  url: "/docs/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  // No badge fetched from validator.swagger.io: the page reaches this origin only.
  validatorUrl: null,
  // Credentials typed into Authorize live in the page's memory only, never in the
  // browser's localStorage: a reload asks for them again.
  persistAuthorization: false,
  displayRequestDuration: true,
});
