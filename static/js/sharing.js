// The share-created page: print the handout (copying the link is base.js's, as on every page).
document.querySelectorAll("button.print").forEach((button) => button.addEventListener("click", () => window.print()));
