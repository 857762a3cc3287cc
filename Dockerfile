# dyno-scaler's image, for users who build it where a registry is at hand: `docker build -t dyno-scaler .`
# The last stage's files come from scripts/build-image.py, the script CI runs to build the same image without a
# registry (scripts/build-image: an OCI layout in target/image/): the binary, the libraries it links, the CA
# certificates and a non-root user, on `scratch`.
FROM rust:1.94-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin dyno-scaler \
 && python3 scripts/build-image.py --rootfs target/release/dyno-scaler \
      "$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)" /rootfs

FROM scratch
COPY --from=build /rootfs /
USER 10001:10001
ENV PATH=/usr/local/bin LD_LIBRARY_PATH=/lib SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /home/scaler
ENTRYPOINT ["/usr/local/bin/dyno-scaler"]
CMD ["run"]
