// The share-created page: copy the link, print the handout.
document.querySelectorAll("button.copy").forEach((button) => {
  button.addEventListener("click", async () => {
    const input = document.querySelector(button.dataset.copy);
    input.select();
    try { await navigator.clipboard.writeText(input.value); } catch (e) { document.execCommand("copy"); }
    button.textContent = "Copied";
  });
});
document.querySelectorAll("button.print").forEach((button) => button.addEventListener("click", () => window.print()));
