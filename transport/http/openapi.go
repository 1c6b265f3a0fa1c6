package httpapi

import (
	"bytes"
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPIDoc is the OpenAPI 3.1 document of every route. TestOpenAPI fails
// when a registered route is missing from it, a documented route is not
// registered, or a test observes a status the document does not list.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns a copy of the OpenAPI 3.1 document served at
// /api/v1/openapi.json.
func OpenAPI() []byte { return bytes.Clone(openAPIDoc) }

// openAPI is GET /api/v1/openapi.json.
func (s *Server) openAPI(c *gin.Context) {
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "application/json; charset=utf-8", openAPIDoc)
}
