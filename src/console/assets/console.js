// callgate console: the only script the Content-Security-Policy allows.
// Times are shown in UTC by the server; a title gives the local time.
document.addEventListener("DOMContentLoaded", () => {
  for (const cell of document.querySelectorAll("td, dd")) {
    const text = cell.textContent.trim();
    if (/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(text)) {
      cell.title = new Date(text).toLocaleString();
    }
  }
  // Dropping a callback cannot be undone: ask first.
  for (const form of document.querySelectorAll('form[action$="/drop"]')) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm("Drop this callback? It will not be delivered.")) e.preventDefault();
    });
  }
});
