package ges

import _ "embed"

// openAPIDoc is the hand-maintained OpenAPI 3 description of the routes Mount
// registers; TestOpenAPIMatchesRoutes keeps the two in step.
//
//go:embed openapi.json
var openAPIDoc []byte
