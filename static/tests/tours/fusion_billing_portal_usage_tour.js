import { registry } from "@web/core/registry";

// A customer opens Usage from the portal home, then one subscription's chart.
registry.category("web_tour.tours").add("fusion_billing_portal_usage_tour", {
    url: "/my",
    steps: () => [
        {
            content: "The Usage card shows once its count is known",
            trigger: ".o_portal_index_card:not(.d-none) a[href='/my/usage']",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "Open the subscription",
            trigger: ".o_fusion_usage_row a:contains('sub_a_recent')",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "The estimate of the current period",
            trigger: ".o_fusion_usage_estimate:contains('62.75')",
        },
        {
            content: "The daily usage chart, a bar per day",
            trigger: "svg.o_fusion_usage_chart rect:nth-of-type(30)",
        },
    ],
});
