package ges

import "embed"

// migrationFS holds the schema migrations applied at Start into schema "ges".
//
//go:embed migrations/*.sql
var migrationFS embed.FS
