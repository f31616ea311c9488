/** The options that hold secrets: no program the launcher starts needs them, so none inherits them. */
export const SECRET_ENV_VARS = ['SNABBVM_PASSWORD', 'SNABBVM_WEB_PASSWORD', 'SNABBVM_VNC_PASSWORD'] as const;

/**
 * The environment a child program gets: the given one (the launcher's by default) without the secrets, which a
 * child would otherwise keep for its whole life in /proc/<pid>/environ (and tmux hands on to every window).
 */
export function childEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const clean = { ...env };
  for (const name of SECRET_ENV_VARS) delete clean[name];
  return clean;
}
