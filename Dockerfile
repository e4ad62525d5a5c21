# syntax=docker/dockerfile:1
# One image for the project's binaries; docker-compose.yml picks one with
# the command: /usr/local/bin/api, /usr/local/bin/worker or
# /usr/local/bin/wechatpay-sim. /usr/local/bin/healthcheck is the
# containers' health probe (the runtime image has no shell and no curl).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ \
        ./cmd/api ./cmd/worker ./cmd/wechatpay-sim ./deploy/healthcheck

# Static binaries only: distroless static, running as the nonroot user
# (65532).
FROM gcr.io/distroless/static-debian12:nonroot AS runtime
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
EXPOSE 8080 8081 8090
CMD ["/usr/local/bin/api"]
