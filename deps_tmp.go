package main
import (
 _ "github.com/golang-jwt/jwt/v5"
 _ "github.com/google/uuid"
 _ "go.uber.org/goleak"
 _ "github.com/jackc/pgx/v5/pgxpool"
 _ "github.com/jackc/pgx/v5/stdlib"
 _ "github.com/zishang520/socket.io/v3/pkg/types"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/jackc/pgx/v5"
 _ "github.com/golang-migrate/migrate/v4"
 _ "github.com/golang-migrate/migrate/v4/database/pgx/v5"
 _ "github.com/golang-migrate/migrate/v4/source/iofs"
 _ "github.com/gin-gonic/gin"
 _ "github.com/zishang520/socket.io/servers/socket/v3"
)
func main(){}
