#!/usr/bin/env bash
# Puts the git deploy key and origin's pinned host key where ssh looks for them, then runs the official image's
# entrypoint. Compose secrets are bind mounts that keep the host file's owner and mode, which ssh refuses for a key
# (too open) or cannot read; copies owned by the airflow user, 0600 and 0644, are what ssh (git, dvc-ssh) expects.
# ssh finds ~ from the passwd entry, not $HOME: /home/airflow for the official image's uid 50000.
set -euo pipefail

ssh_dir=/home/airflow/.ssh
install_secret() {  # secret name, file in ~/.ssh, mode
    local src="/run/secrets/$1"
    [[ -e "$src" ]] || return 0
    if [[ ! -r "$src" ]]; then
        echo "$src is not readable by uid $(id -u): make the host file readable by it (docs/airflow.md)" >&2
        exit 1
    fi
    install -d -m 0700 "$ssh_dir"
    install -m "$3" "$src" "$ssh_dir/$2"
}
install_secret git_ssh_key id_ed25519 0600
install_secret git_known_hosts known_hosts 0644

# the official ENTRYPOINT runs dumb-init (PID 1, kept) and then /entrypoint: this script sits between them
exec /entrypoint "$@"
