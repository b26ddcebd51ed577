// The card page: Stripe.js collects the card and confirms the SetupIntent, then the form
// posts only the SetupIntent's id, which the server checks with Stripe.
(function () {
  const form = document.getElementById("card-form");
  if (!form || typeof Stripe === "undefined") {
    const error = document.getElementById("card-error");
    if (error) error.textContent = "Stripe's card form could not be loaded; please reload the page.";
    return;
  }
  const stripe = Stripe(form.dataset.publishableKey);
  const card = stripe.elements().create("card");
  card.mount("#card-element");
  const button = document.getElementById("card-submit");
  const error = document.getElementById("card-error");
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    button.disabled = true;
    button.textContent = "Saving…";
    error.textContent = "";
    const result = await stripe.confirmCardSetup(form.dataset.clientSecret, {payment_method: {card: card}});
    if (result.error) {
      error.textContent = result.error.message || "The card was not accepted; please check it and try again.";
      button.disabled = false;
      button.textContent = "Save card";
      return;
    }
    form.elements.setup_intent.value = result.setupIntent.id || form.dataset.clientSecret.split("_secret_")[0];
    form.submit();
  });
})();
