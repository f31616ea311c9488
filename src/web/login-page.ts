/** The one page served without the password: a form that posts it to /login. Self-contained (the CSP allows no inline script, and none is needed). */
export function loginPage(wrongPassword: boolean): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>snabbvm: log in</title>
<style>
  body { font: 15px system-ui, sans-serif; background: #111418; color: #dde3ea; display: grid; place-items: center; height: 100vh; margin: 0; }
  form { background: #1b2027; padding: 2em; border-radius: 8px; display: grid; gap: 0.8em; min-width: 18em; }
  input, button { font: inherit; padding: 0.5em; border-radius: 4px; border: 1px solid #3a4452; background: #0d1014; color: inherit; }
  button { background: #2d6cdf; border: 0; cursor: pointer; }
  .error { color: #ff7b72; }
</style></head>
<body><form method="post" action="/login">
  <strong>snabbvm web console</strong>
  <label for="password">Password (--web-password)</label>
  <input id="password" name="password" type="password" autocomplete="current-password" autofocus required>
  ${wrongPassword ? '<span class="error" id="login-error">Wrong password.</span>' : ''}
  <button type="submit">Log in</button>
</form></body></html>
`;
}
